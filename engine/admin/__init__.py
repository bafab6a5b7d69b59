"""The admin for editors and site owners."""
from engine.admin.menu import MenuItem

__all__ = ["MenuItem"]
