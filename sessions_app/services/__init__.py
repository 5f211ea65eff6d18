"""Writes: everything that changes a session, its log or its presence goes through here."""
