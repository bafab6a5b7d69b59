"""The one error a campaign operation raises: its message is shown to the editor as it is."""
from __future__ import annotations


class CampaignError(ValueError):
    """A campaign that cannot be saved, started or changed as asked; the message says why."""
