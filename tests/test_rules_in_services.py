"""Rules live in services, once: a model's own rules are checked by the
service for every caller (API, admin, code), the client's cancel reason is
kept, and a refusal in the admin never comes with a success message."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.test import Client
from django.urls import reverse

from bookings import services as booking_services
from bookings.models import Booking, Service, WorkingHours
from studio import context
from studio.models import Membership
from studio.tenancy import studio_scope
from tests import factories
from tests.test_audit import assert_error
from tests.test_bookings_api import _anon, _held

pytestmark = pytest.mark.django_db


def test_the_clients_cancel_reason_is_kept(studio):
    booking, token = _held(studio)
    response = _anon().post(
        f"/api/v1/public/bookings/{token}/cancel/", {"reason": "Our flight was moved"}, format="json"
    )
    assert response.status_code == 200, response.content
    with studio_scope(studio):
        assert Booking.objects.get(pk=booking.pk).cancel_reason == "Our flight was moved"  # before: dropped
    # The same validation as before: too long is refused.
    other, token2 = _held(studio)
    refused = _anon().post(f"/api/v1/public/bookings/{token2}/cancel/", {"reason": "x" * 201}, format="json")
    assert_error(refused, 400, "VALIDATION_ERROR")


@pytest.mark.parametrize(
    ("model", "values", "field", "code"),
    [
        (Service, {"name": "S", "duration_minutes": 60, "price": 10, "deposit": 20}, "deposit", "deposit_above_price"),
        (Service, {"name": "S", "duration_minutes": 0}, "duration_minutes", "min_value"),
        (WorkingHours, {"weekday": 1, "start_time": "18:00", "end_time": "09:00"}, "end_time", "not_after_start"),
        (WorkingHours, {"weekday": 9, "start_time": "09:00", "end_time": "18:00"}, "weekday", "invalid_choice"),
    ],
)
def test_services_validate_the_model_for_every_caller(studio, model, values, field, code):
    """Called from code (no serializer, no form), the service still refuses
    what the model forbids, with the model's own field and code."""
    save = booking_services.service_save if model is Service else None
    with context.acting_as(factories.TEST_ACTOR), studio_scope(studio):
        obj = model(**values)
        with pytest.raises(ValidationError) as caught:
            if save is not None:
                save(service=obj)
            else:
                booking_services.availability_save(obj=obj)
        assert not model.objects.exists()
    assert [e.code for e in caught.value.error_dict[field]] == [code]


def test_the_api_reports_model_rules_with_their_field_and_code(studio, owner, client_for):
    response = client_for(owner).post(
        f"/api/v1/studios/{studio.slug}/services/",
        {"name": "Portrait", "duration_minutes": 60, "price": "100.00", "deposit": "150.00"},
        format="json",
    )
    body = assert_error(response, 400, "VALIDATION_ERROR")
    assert body["error"]["fields"] == {"deposit": ["The deposit cannot exceed the price."]}
    assert body["error"]["details"]["field_codes"] == {"deposit": ["deposit_above_price"]}
    # A partial update is checked against the stored values.
    created = client_for(owner).post(
        f"/api/v1/studios/{studio.slug}/services/",
        {"name": "Portrait", "duration_minutes": 60, "price": "100.00", "deposit": "50.00"},
        format="json",
    )
    url = f"/api/v1/studios/{studio.slug}/services/{created.json()['id']}/"
    assert_error(client_for(owner).patch(url, {"price": "40.00"}, format="json"), 400, "VALIDATION_ERROR")
    with studio_scope(studio):
        assert Service.objects.get().price == Decimal("100.00")


def test_a_refused_admin_delete_shows_no_success_message(studio, owner):
    """Deleting the last owner is refused by the service; before, the admin
    showed the error and "deleted successfully" side by side."""
    client = Client()
    client.force_login(owner.user)
    url = reverse("admin:studio_membership_delete", args=[owner.pk])
    response = client.post(url, {"post": "yes"}, follow=True)
    texts = [str(m) for m in response.context["messages"]]
    assert any("at least one owner" in t for t in texts), texts
    assert not any("successfully" in t for t in texts), texts
    with studio_scope(studio):
        assert Membership.objects.filter(pk=owner.pk).exists()
