from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.http import HttpRequest

from studio import services as studio_services
from studio.admin import StudioModelAdmin, actor_of
from studio.errors import DomainError
from studio.models import Membership
from studio.tenancy import current_studio_or_none, unscoped
from teams import services
from teams.models import Invitation, Team


@admin.register(Membership)
class MembershipAdmin(StudioModelAdmin):
    read_scope = "member:read"
    write_scope = "member:admin"
    list_display = ["user", "role", "created_at"]
    list_filter = ["role"]
    search_fields = ["user__email", "user__full_name"]
    fields = ["user", "role"]
    readonly_fields = ["user"]
    list_select_related = ["user", "studio"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # members join through invitations

    def save_through_service(self, request: HttpRequest, obj: Membership, form: Any, change: bool) -> Membership:
        fresh = Membership.objects.get(pk=obj.pk)
        return studio_services.membership_change_role(actor=actor_of(request), membership=fresh, role=obj.role)

    def delete_model(self, request: HttpRequest, obj: Membership) -> None:
        with self.write_scope_for(request, obj):
            try:
                studio_services.membership_remove(actor=actor_of(request), membership=obj)
            except DomainError as exc:
                self.refuse(request, exc)

    def delete_queryset(self, request: HttpRequest, queryset: Any) -> None:
        for obj in queryset:
            self.delete_model(request, obj)


class TeamForm(forms.ModelForm):
    class Meta:
        model = Team
        fields = ["studio", *Team.EDITABLE_FIELDS]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Built per request, inside the admin's studio scope (staff) or
        # unscoped (superusers), so narrow to the team's own studio when known.
        members = Membership.objects.select_related("user", "studio")
        if not self.instance._state.adding:
            members = members.filter(studio_id=self.instance.studio_id)
        self.fields["team_members"] = forms.ModelMultipleChoiceField(queryset=members, required=False, label="Members")
        if not self.instance._state.adding:
            self.fields["team_members"].initial = list(self.instance.members.all())

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        # The studio: chosen (superusers), the team's own, or the admin studio.
        studio = (
            data.get("studio")
            or (self.instance.studio if self.instance.studio_id else None)
            or current_studio_or_none()
        )
        if studio is None:
            return data
        name = data.get("name")
        with unscoped():  # the studio is explicit in the filter
            taken = name and Team.objects.filter(studio=studio, name=name).exclude(pk=self.instance.pk).exists()
        if taken:
            self.add_error("name", f"A team named '{name}' already exists.")
        foreign = [m for m in data.get("team_members") or [] if m.studio_id != studio.pk]
        if foreign:
            self.add_error("team_members", f"Not members of {studio}: {', '.join(str(m) for m in foreign)}.")
        return data


@admin.register(Team)
class TeamAdmin(StudioModelAdmin):
    form = TeamForm
    read_scope = "member:read"
    write_scope = "member:admin"
    list_display = ["name", "description", "created_at"]
    search_fields = ["name"]

    def save_through_service(self, request: HttpRequest, obj: Team, form: Any, change: bool) -> Team:
        members = list(form.cleaned_data.get("team_members") or [])
        if change:
            fresh = Team.objects.get(pk=obj.pk)
            return services.team_update(team=fresh, name=obj.name, description=obj.description, members=members)
        return services.team_create(name=obj.name, description=obj.description, members=members)

    def delete_model(self, request: HttpRequest, obj: Team) -> None:
        with self.write_scope_for(request, obj):
            services.team_delete(team=obj)

    def delete_queryset(self, request: HttpRequest, queryset: Any) -> None:
        for obj in queryset:
            self.delete_model(request, obj)


@admin.register(Invitation)
class InvitationAdmin(StudioModelAdmin):
    read_scope = "member:admin"
    write_scope = "member:admin"
    list_display = ["email", "role", "status", "expires_at", "invited_by", "created_at"]
    list_filter = ["role"]
    search_fields = ["email"]
    fields = ["studio", "email", "role"]
    actions = ["revoke"]

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # invitations are revoked and re-sent, never edited

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def save_through_service(self, request: HttpRequest, obj: Invitation, form: Any, change: bool) -> Invitation:
        created, _ = services.invitation_create(actor=actor_of(request), email=obj.email, role=obj.role)
        return created

    def has_revoke_permission(self, request: HttpRequest) -> bool:
        return self.has_add_permission(request)

    @admin.action(description="Revoke selected invitations", permissions=["revoke"])
    def revoke(self, request: HttpRequest, queryset: Any) -> None:
        for invitation in queryset:
            with self.write_scope_for(request, invitation):
                try:
                    services.invitation_revoke(invitation=invitation)
                except DomainError as exc:
                    self.refuse(request, exc)
