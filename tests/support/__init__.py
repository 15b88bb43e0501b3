"""Test support: in-memory fakes, a recording @connections sink, fixtures' helpers."""
