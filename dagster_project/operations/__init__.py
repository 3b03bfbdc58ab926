"""Running the pipeline unattended: dead runs, alerts, retention, the state of a deployment."""
