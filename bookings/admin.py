"""Bookings admin: services and availability (booking:admin), bookings by
date with actions confirm, cancel and complete (booking:write) and mark the
deposit paid (booking:admin), bookings taken by phone (add), contact
submissions. Times are the studio's. Writes go through services, so they are
checked and audited like the API's."""

from __future__ import annotations

import zoneinfo
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone

from bookings import services
from bookings.models import Booking, ContactSubmission, DateOverride, PaymentStatus, Service, TimeOff, WorkingHours
from studio.admin import ReadOnlyStudioModelAdmin, StudioModelAdmin, has_scope
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


class BookingAddForm(forms.ModelForm):
    """A booking taken by phone or email. The time is read in the admin's
    zone, which is the studio's (StudioAdminSite activates it)."""

    # Filled per request: the managers are studio-scoped.
    service = forms.ModelChoiceField(queryset=Service._base_manager.none())
    member = forms.ModelChoiceField(
        queryset=Membership._base_manager.none(),
        required=False,
        help_text="Empty: the first free member of the service (or the studio).",
    )
    anytime = forms.BooleanField(
        required=False,
        label="Allow any time",
        help_text="Outside the working hours, the notice or the advance limit. Never over another booking or hold.",
    )

    class Meta:
        model = Booking
        fields = ["service", "starts_at", "client_name", "client_email", "client_phone", "notes"]
        labels = {"starts_at": "Starts"}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["service"].queryset = Service.objects.filter(is_active=True).select_related("studio")
        self.fields["member"].queryset = Membership.objects.select_related("user")
        self.fields["starts_at"].help_text = f"In {timezone.get_current_timezone_name()} time."

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if data.get("service"):
            self.instance.studio = data["service"].studio  # the studio written in (superusers)
        return data


@admin.register(Booking)
class BookingAdmin(StudioModelAdmin):
    read_scope = "booking:read"
    write_scope = "booking:write"
    list_display = ["when", "service", "client_name", "client_email", "status", "deposit", "resource"]
    list_filter = ["status", "service"]
    search_fields = ["client_name", "client_email"]
    # Groups by the day in the active zone: the studio's.
    date_hierarchy = "starts_at"
    list_select_related = ["service", "studio"]
    ordering = ["-starts_at"]
    actions = ["confirm", "cancel", "complete", "mark_deposit_paid"]
    # The client's link is their key: its hash has no business on screen.
    hidden_fields = ("token_hash", "studio", "starts_at", "ends_at", "blocked_start", "blocked_end")
    add_fields = ["service", "starts_at", "member", "anytime", "client_name", "client_email", "client_phone", "notes"]

    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any) -> Any:
        if obj is None:
            kwargs["form"] = BookingAddForm
        return super().get_form(request, obj, change=change, **kwargs)

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        if obj is None:
            return []
        shown = [f.name for f in Booking._meta.fields if f.name not in (*self.hidden_fields, "notes")]
        return ["when", "deposit", *shown]

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        if obj is None:
            return [*self.add_fields]
        return [*self.get_readonly_fields(request, obj), "notes"]

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # cancel instead: the calendar and the audit keep it

    def has_mark_paid_permission(self, request: HttpRequest) -> bool:
        return has_scope(request, "booking:admin")  # recording money, as in the API

    @admin.display(description="When (studio time)", ordering="starts_at")
    def when(self, booking: Booking) -> str:
        """In the studio's zone, named, whoever looks (a superuser's list
        spans studios, so the active zone is not enough)."""
        tz = zoneinfo.ZoneInfo(booking.studio.timezone)
        start, end = booking.starts_at.astimezone(tz), booking.ends_at.astimezone(tz)
        return f"{start:%a %d %b %Y, %H:%M}–{end:%H:%M} {start:%Z}"

    @admin.display(description="Deposit")
    def deposit(self, booking: Booking) -> str:
        if booking.deposit_amount <= 0:
            return "–"
        paid = any(p.status == PaymentStatus.PAID for p in booking.payments.all())
        return f"{booking.deposit_amount} {booking.service.currency} {'paid' if paid else 'due'}"

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return super().get_queryset(request).prefetch_related("payments")

    def save_through_service(self, request: HttpRequest, obj: Booking, form: Any, change: bool) -> Booking:
        if not change:
            data = form.cleaned_data
            return services.booking_create(
                service=data["service"],
                starts_at=data["starts_at"],
                client_name=data["client_name"],
                client_email=data["client_email"],
                client_phone=data.get("client_phone") or "",
                notes=data.get("notes") or "",
                member=data.get("member"),
                anytime=bool(data.get("anytime")),
            )
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

    @admin.action(description="Mark the deposit paid (received by hand)", permissions=["mark_paid"])
    def mark_deposit_paid(self, request: HttpRequest, queryset: QuerySet) -> None:
        self._each(
            request,
            queryset,
            "Recorded the deposit of",
            lambda b: services.payment_mark_paid(booking=b, user=request.user),
        )


@admin.register(ContactSubmission)
class ContactSubmissionAdmin(ReadOnlyStudioModelAdmin):
    read_scope = "booking:read"
    write_scope = "booking:write"
    list_display = ["created_at", "name", "email", "phone", "service", "booking"]
    search_fields = ["name", "email", "message"]
    list_select_related = ["service", "booking", "studio"]
