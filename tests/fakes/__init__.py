"""Test doubles that mimic real APIs exactly; preferred to mock.patch. One module per area."""
