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

Another package, e.g.::

    import sys; sys.path.insert(0, "scripts")
    from openwrt_pkg import apk, ipk
    from openwrt_pkg.model import Package, source_date_epoch

    pkg = Package("luci-app-spa-lite", "0.1.0", "1",
                  {"www/luci-static/resources/view/spa-lite.js": (js_bytes, 0o644)},
                  description="LuCI support for spa-lite", depends=["luci-base", "spa-lite"],
                  section="luci", license="MIT", maintainer="Name <address>",
                  url="https://...", epoch=source_date_epoch(repo_root),
                  postinst="#!/bin/sh\n...")
    open("dist/" + apk.filename(pkg), "wb").write(apk.build(pkg))   # 25.12+
    open("dist/" + ipk.filename(pkg), "wb").write(ipk.build(pkg))   # 24.10

Paths are relative (no leading slash), modes explicit; directories are implied and owned
by root with mode 0755; conffiles are absolute paths of files in the package.
"""
