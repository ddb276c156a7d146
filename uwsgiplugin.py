# Lets `uwsgi --build-plugin .` build netreload_plugin.so with uWSGI's own flags.
NAME = 'netreload'
CFLAGS = ['-std=gnu11', '-Wall', '-Wextra', '-Werror']
LDFLAGS = []
LIBS = ['-lpthread', '-lcrypto']
GCC_LIST = ['plugin/netreload', 'plugin/listen', 'plugin/reload', 'plugin/logtap', 'plugin/handover',
            'plugin/share', 'common/nr_proto', 'common/nr_auth', 'common/nr_files']
