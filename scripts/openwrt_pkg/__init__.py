"""Build OpenWrt packages without the SDK: one package description (``model.Package``),
written out as an opkg ``.ipk`` (OpenWrt 24.10 and older) by ``ipk.build`` or as an
apk-tools v3 ``.apk`` (OpenWrt 25.12 and later) by ``apk.build``.

Both writers take the same ``Package`` (metadata, the file tree with modes, the package's
own maintainer script bodies) and return bytes, so the two formats cannot drift apart:
what differs between them is only what OpenWrt's include/package-pack.mk does differently
for each (script wrappers, ``/lib/apk/packages/*`` files, version spelling).

``spa_lite_package`` (module ``spalite``) fills a Package from openwrt/Makefile and the
checkout; another package (luci-app-spa-lite) builds its own Package and calls the same
writers.
"""
