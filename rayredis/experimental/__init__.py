"""Ray's ``ray.experimental`` names that rayredis has: ``tqdm_ray`` (progress bars drawn at the driver)."""
