"""Firewall backends behind one small interface (``base.Backend``), one module each.

The server hands a backend ``Grant`` objects and nothing else: a backend knows nothing of
packets, and the policy nothing of nft or iptables.
"""
