"""Contacts: people, companies, tags, consent and the activity timeline (the 360-degree view)."""
