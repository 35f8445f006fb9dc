"""Bookings admin: services and availability (booking:admin), bookings by
date with actions confirm, cancel and complete (booking:write), contact
submissions. Writes go through services, so they are audited."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from bookings import services
from bookings.models import Booking, ContactSubmission, DateOverride, Service, TimeOff, WorkingHours
from studio.admin import ReadOnlyStudioModelAdmin, StudioModelAdmin
from studio.errors import DomainError
from studio.models import Membership


class _MemberForm(forms.ModelForm):
    # Filled per request: a model form would query the scoped manager at import.
    member = forms.ModelChoiceField(
        queryset=Membership._base_manager.none(), required=False, help_text="Empty: the studio's."
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if "member" in self.fields:
            self.fields["member"].queryset = Membership.objects.select_related("user")


class _ConfigAdmin(StudioModelAdmin):
    read_scope = "booking:read"
    write_scope = "booking:admin"
    form = _MemberForm

    def save_through_service(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> Any:
        return services.availability_save(obj=obj)

    def delete_model(self, request: HttpRequest, obj: Any) -> None:
        with self.write_scope_for(request, obj):
            services.availability_delete(obj=obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet) -> None:
        for obj in queryset:
            self.delete_model(request, obj)


@admin.register(WorkingHours)
class WorkingHoursAdmin(_ConfigAdmin):
    list_display = ["weekday", "start_time", "end_time", "member"]
    list_filter = ["weekday"]


@admin.register(DateOverride)
class DateOverrideAdmin(_ConfigAdmin):
    list_display = ["date", "start_time", "end_time", "member"]


@admin.register(TimeOff)
class TimeOffAdmin(_ConfigAdmin):
    list_display = ["starts_at", "ends_at", "reason", "member"]


class ServiceForm(forms.ModelForm):
    # Members (a many-to-many to a scoped model) are set through the API.
    class Meta:
        model = Service
        fields = ["studio", *Service.EDITABLE_FIELDS]


@admin.register(Service)
class ServiceAdmin(StudioModelAdmin):
    form = ServiceForm
    read_scope = "booking:read"
    write_scope = "booking:admin"
    list_display = ["name", "duration_minutes", "price", "deposit", "currency", "is_active"]
    list_filter = ["is_active"]
    search_fields = ["name"]

    def save_through_service(self, request: HttpRequest, obj: Service, form: Any, change: bool) -> Service:
        return services.service_save(service=obj)

    def delete_model(self, request: HttpRequest, obj: Service) -> None:
        with self.write_scope_for(request, obj):
            try:
                services.service_delete(service=obj)
            except DomainError as exc:
                self.refuse(request, exc)


@admin.register(Booking)
class BookingAdmin(StudioModelAdmin):
    read_scope = "booking:read"
    write_scope = "booking:write"
    list_display = ["starts_at", "service", "client_name", "client_email", "status", "resource"]
    list_filter = ["status", "service"]
    search_fields = ["client_name", "client_email"]
    date_hierarchy = "starts_at"
    list_select_related = ["service", "studio"]
    ordering = ["-starts_at"]
    actions = ["confirm", "cancel", "complete"]
    fields = ["notes"]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return [f.name for f in Booking._meta.fields if f.name != "notes"]

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return [*self.get_readonly_fields(request, obj), "notes"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # bookings come from the booking flow or a converted enquiry

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # cancel instead: the calendar and the audit keep it

    def save_through_service(self, request: HttpRequest, obj: Booking, form: Any, change: bool) -> Booking:
        return services.booking_assign(booking=Booking.objects.get(pk=obj.pk), notes=obj.notes)

    def _each(self, request: HttpRequest, queryset: QuerySet, label: str, act: Any) -> None:
        done = 0
        for booking in queryset:
            with self.write_scope_for(request, booking):
                try:
                    act(booking)
                    done += 1
                except DomainError as exc:
                    self.refuse(request, exc, prefix=f"{booking}: ")
        if done:
            messages.success(request, f"{label} {done} booking(s).")

    @admin.action(description="Confirm selected bookings", permissions=["change"])
    def confirm(self, request: HttpRequest, queryset: QuerySet) -> None:
        self._each(request, queryset, "Confirmed", lambda b: services.booking_staff_confirm(booking=b))

    @admin.action(description="Cancel selected bookings", permissions=["change"])
    def cancel(self, request: HttpRequest, queryset: QuerySet) -> None:
        self._each(request, queryset, "Cancelled", lambda b: services.booking_cancel(booking=b, by_client=False))

    @admin.action(description="Mark selected bookings completed", permissions=["change"])
    def complete(self, request: HttpRequest, queryset: QuerySet) -> None:
        self._each(request, queryset, "Completed", lambda b: services.booking_complete(booking=b))


@admin.register(ContactSubmission)
class ContactSubmissionAdmin(ReadOnlyStudioModelAdmin):
    read_scope = "booking:read"
    write_scope = "booking:write"
    list_display = ["created_at", "name", "email", "phone", "service", "booking"]
    search_fields = ["name", "email", "message"]
    list_select_related = ["service", "booking", "studio"]
