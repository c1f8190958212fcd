"""Slack's interactivity endpoint: a click on a request's buttons, or its form submitted."""
