/*
 * compat.h - what the platform offers; the only place besides the backend
 * files where #if may test the OS.
 */
#ifndef NR_COMPAT_H
#define NR_COMPAT_H

#if defined(__linux__)
#define NR_HAVE_INOTIFY 1
#else
#define NR_HAVE_INOTIFY 0
#endif

#endif
