"""Load tests and reports: Locust user, offline engine benchmark, HF baseline, plots."""
