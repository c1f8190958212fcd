"""Webhooks: endpoints per environment, events enqueued with each resolution, signed delivery.

* ``events``: written to the outbox in the transaction that resolves the token, one message
  per event and endpoint, so a slow or failing endpoint never holds up another;
* ``handler``: sends one message, outside any transaction, signed per the Standard Webhooks
  specification (``signing``), through the SSRF-safe client (``tokens.delivery.http_client``);
* ``endpoints``: the writes the API, the dashboard and admin call.
"""
