"""Public routes, under /api/v1/public/ (no sign-in)."""

from django.urls import path

from bookings.api import public_views as views

urlpatterns = [
    path("studios/<slug:public_slug>/services/", views.PublicServicesView.as_view(), name="public-services"),
    path("studios/<slug:public_slug>/services/<uuid:pk>/slots/", views.PublicSlotsView.as_view(), name="public-slots"),
    path("studios/<slug:public_slug>/holds/", views.PublicHoldView.as_view(), name="public-hold"),
    path("studios/<slug:public_slug>/contact/", views.PublicContactView.as_view(), name="public-contact"),
    path("bookings/<str:token>/", views.ClientBookingDetailView.as_view(), name="client-booking"),
    path("bookings/<str:token>/confirm/", views.ClientConfirmView.as_view(), name="client-booking-confirm"),
    path("bookings/<str:token>/checkout/", views.ClientCheckoutView.as_view(), name="client-booking-checkout"),
    path("bookings/<str:token>/cancel/", views.ClientCancelView.as_view(), name="client-booking-cancel"),
    path("bookings/<str:token>/reschedule/", views.ClientRescheduleView.as_view(), name="client-booking-reschedule"),
    path("payments/stripe/webhook/", views.StripeWebhookView.as_view(), name="stripe-webhook"),
]
