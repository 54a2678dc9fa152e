"""The SPA server: capture -> candidate -> replay check -> stanza decisions -> grants.

Data flows one way through plain objects defined in ``model``; the policy is a pure function
of (candidate, settings, now), and the firewall is reached only through ``spa_lite.firewall``.
"""
