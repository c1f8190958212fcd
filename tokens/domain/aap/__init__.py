"""The Agent Approval Protocol (AAP v1) provider's rules.

An AAP **instance** (one agent) belongs to one environment; a **provisioner token** of that
environment creates, reads, updates and deletes its instances; each instance's **credential**
makes approval requests. Each **request** is exactly one waitpoint token of the environment, so
it is decided every way a token is (dashboard, e-mailed links, Slack, admin, the token API) and
ends through ``tokens.domain.resolution`` like any token; its AAP state is derived from the
token's (``representation.status_of``), so the two can never disagree.

* ``errors``          the spec's error: HTTP status, type, code, param
* ``inputs``          strict parsing of protocol objects (unknown fields and nulls refused)
* ``credentials``     provisioner tokens and instance credentials: shown once, digests at rest
* ``instances``       provision, read, update, delete (with receiver verification)
* ``requests``        create, read, cancel, consume, outcome
* ``representation``  the wire form of instances and requests
"""
