# Yocto/OpenEmbedded recipe for Eddy's device agent (eddyd) and command line (eddy).
# Copy into a layer (recipes-support/eddy/eddy_0.1.0.bb) and add `eddy` to IMAGE_INSTALL.
# Needs meta-oe (yaml-cpp, libsodium, http-parser, nlohmann-json, cli11, asio, mbedtls comes
# from meta-networking in older releases) and a GCC with C++23 <expected> (GCC 12 or newer:
# Yocto 4.2 "mickledore" and later). systemd must be the init manager
# (INIT_MANAGER = "systemd").
SUMMARY = "Eddy device agent: signed GitOps updates with health checks and rollback"
DESCRIPTION = "eddyd follows a signed Git fleet repository, installs the releases it assigns \
to the device, checks their health and rolls back on its own; eddy talks to it."
SECTION = "admin"
# The project has not chosen its licence yet: set LICENSE and LIC_FILES_CHKSUM once it has.
LICENSE = "CLOSED"

# Point SRC_URI at your copy of the repository (and SRCREV at the commit to build).
SRC_URI = "git://git.example.com/eddy.git;protocol=https;branch=main"
SRCREV = "${AUTOREV}"
PV = "0.1.0+git${SRCPV}"
S = "${WORKDIR}/git"

DEPENDS = "libgit2 sqlite3 zstd libsodium libarchive mbedtls openssl yaml-cpp http-parser \
           nlohmann-json cli11 asio"

inherit cmake pkgconfig systemd useradd

# The release configuration the Debian packages use (cross/build --release): no fault
# points, no tests, unused code dropped and link-time optimisation.
EXTRA_OECMAKE = "-DEDDY_BUILD_TESTS=OFF -DEDDY_FAULT_INJECTION=OFF -DEDDY_RELEASE_SIZE=ON \
                 -DEDDY_WERROR=OFF"

do_install:append() {
    install -D -m 0644 ${S}/packaging/eddyd.service ${D}${systemd_system_unitdir}/eddyd.service
    install -D -m 0644 ${S}/packaging/eddyd.yaml ${D}${sysconfdir}/eddy/eddyd.yaml
    install -D -m 0644 ${S}/packaging/eddy.tmpfiles ${D}${nonarch_libdir}/tmpfiles.d/eddy.conf
    install -D -m 0644 ${S}/packaging/eddy.sysusers ${D}${nonarch_libdir}/sysusers.d/eddy.conf
    install -d -m 0755 ${D}${localstatedir}/lib/eddy
}

# `cmake --install` puts eddyd's update worker in ${libexecdir}/eddy/eddyd-worker (in FILES:${PN}
# by default); eddyd finds it there, relative to ${sbindir}.
SYSTEMD_SERVICE:${PN} = "eddyd.service"
SYSTEMD_AUTO_ENABLE:${PN} = "enable"

# The control socket's group (packaging/eddy.sysusers), made at image build time.
USERADD_PACKAGES = "${PN}"
GROUPADD_PARAM:${PN} = "--system eddy"

FILES:${PN} += "${systemd_system_unitdir}/eddyd.service \
                ${nonarch_libdir}/tmpfiles.d/eddy.conf \
                ${nonarch_libdir}/sysusers.d/eddy.conf \
                ${localstatedir}/lib/eddy"
CONFFILES:${PN} = "${sysconfdir}/eddy/eddyd.yaml"

# Shared libraries are found by the shlibs scan; these are what eddyd needs at run time
# beyond them: CA certificates for https:// fleet repositories and hubs.
RDEPENDS:${PN} = "ca-certificates"

# The hub (`cmake --install` builds and installs it too) is a package of its own, eddy-hub,
# as in the Debian packages: a device image takes `eddy` only.
PACKAGES =+ "${PN}-hub"
FILES:${PN}-hub = "${sbindir}/eddy-hub ${systemd_system_unitdir}/eddy-hub.service \
                   ${sysconfdir}/eddy/hub.yaml"
CONFFILES:${PN}-hub = "${sysconfdir}/eddy/hub.yaml"
RDEPENDS:${PN}-hub = "ca-certificates"
# The system user the hub's unit runs as (packaging/eddy-hub.sysusers), made at image build time.
USERADD_PACKAGES += "${PN}-hub"
USERADD_PARAM:${PN}-hub = "--system --user-group --home-dir /var/lib/eddy-hub --no-create-home \
                           --shell /sbin/nologin eddy-hub"
do_install:append() {
    install -D -m 0644 ${S}/packaging/eddy-hub.service ${D}${systemd_system_unitdir}/eddy-hub.service
    install -D -m 0644 ${S}/packaging/hub.yaml ${D}${sysconfdir}/eddy/hub.yaml
}
