/*
 * version.c - the library's version string.  ST3D_VERSION_STRING comes from
 * CMakeLists.txt's project(VERSION ...), the one place the version is
 * written; the pkg-config file, the shared library's soname and
 * `st3d --version` all read it from there.
 */
#include "core.h"

#ifndef ST3D_VERSION_STRING
#error "ST3D_VERSION_STRING must be defined by the build (CMakeLists.txt)"
#endif

const char *st3d_version(void) { return ST3D_VERSION_STRING; }
