"""Plain types shared by the raylet, the GCS and the driver: resource arithmetic and node views."""
