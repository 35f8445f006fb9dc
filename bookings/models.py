"""Services, availability, bookings and holds arrive with the bookings issue."""
