"""Calibration from recorded data: delays, time-filter window, thresholds, clock offset (not built yet)."""
