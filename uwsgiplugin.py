# Lets `uwsgi --build-plugin /path/to/netreload` build netreload_plugin.so with the
# flags of the uWSGI that runs it (uwsgiconfig.py execs this file). The plugin also
# records which uWSGI it is for (nr_abi.h, see plugin/abi.h); uWSGI's builder has
# already written that uWSGI's uwsgi.h into .uwsgi_plugins_builder/ in the current dir.
import os
import sys


def _source_dir():
    # exec'd, not imported: no __file__; uwsgiconfig.py got our dir after -x/--extra-plugin
    for i, arg in enumerate(sys.argv[:-1]):
        if arg in ("-x", "--extra-plugin", "-p", "--plugin"):
            return os.path.abspath(sys.argv[i + 1])
    return os.path.abspath(".")


def _write_abi_header(builder=".uwsgi_plugins_builder"):
    sys.path.insert(0, os.path.join(_source_dir(), "tools"))
    import uwsgi_abi
    with open(os.path.join(builder, "uwsgi.h"), "rb") as f:
        printed = f.read() + b"\n"  # what `uwsgi --dot-h` prints
    uwsgi_abi.write_abi_header(os.path.join(builder, "nr_abi.h"), printed,
                               os.environ.get("UWSGI_PLUGINS_BUILDER_CFLAGS", ""),
                               "via uwsgi --build-plugin")


_write_abi_header()

NAME = 'netreload'
CFLAGS = ['-std=gnu11']
LDFLAGS = []
LIBS = ['-lpthread', '-lcrypto']
GCC_LIST = ['plugin/netreload', 'plugin/glue', 'plugin/server', 'plugin/request', 'plugin/reload', 'plugin/waiters', 'plugin/logs', 'plugin/handover',
            'plugin/share', 'plugin/abi', 'plugin/python', 'common/nr_proto', 'common/nr_auth', 'common/nr_files']
