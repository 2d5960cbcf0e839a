"""Pure analysis functions (forecasts, anomalies, grounded narratives) over pandas frames."""
