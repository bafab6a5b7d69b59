"""placeholder: routes for webhooks"""
from __future__ import annotations
