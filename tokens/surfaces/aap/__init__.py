"""The Agent Approval Protocol (AAP v1) at ``/api/aap``: provisioning (``/v1/instances``) and
approval requests (``/v1/requests``). Parses, authenticates, rate-limits and renders; every rule
is in ``tokens.domain.aap`` and the token domain it builds on."""
