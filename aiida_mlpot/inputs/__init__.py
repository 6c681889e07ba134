"""Pure input builders of the external codes (no AiiDA import)."""
