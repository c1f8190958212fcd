"""Slack as a delivery channel for approval requests (docs/slack.md).

* ``channel``: routing and the outbox rows written when a request is created, voted on,
  followed up or resolved (the ``tokens.delivery.chat.Channel`` of Slack);
* ``handlers``: the outbox handlers, the only code that calls Slack's Web API from the worker;
* ``api``: the official ``slack_sdk`` WebClient, pointed at ``SLACK_API_URL``, and what each of
  Slack's answers means for a retry;
* ``blocks`` and ``mrkdwn``: the Block Kit message, the form (a modal) and Markdown in Slack's
  own formatting;
* ``people``: the e-mail ↔ Slack user cache;
* ``connections``: the per-environment connection (secrets encrypted at rest) and its routes.

The interactivity endpoint (a click) is a surface: ``tokens.surfaces.slack``.
"""
