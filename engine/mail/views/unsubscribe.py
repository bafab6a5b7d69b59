"""placeholder: routes for unsubscribe"""
from __future__ import annotations
