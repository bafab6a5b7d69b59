"""placeholder: routes for tracking"""
from __future__ import annotations
