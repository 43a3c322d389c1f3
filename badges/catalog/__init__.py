"""Ready-made badge sets, built as data (`Badge` Structs) to drop into a campaign's `badges`."""

from badges.catalog.airports import airport_codes, destination_badges

__all__ = ["airport_codes", "destination_badges"]
