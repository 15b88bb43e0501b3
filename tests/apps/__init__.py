"""Small Chalice apps in the shapes users write, served by the local gateway in tests."""
