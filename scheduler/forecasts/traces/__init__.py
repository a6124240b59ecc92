"""Carbon-intensity traces shipped with Greenlight (Electricity Maps, ODbL; see ATTRIBUTION.md)."""
