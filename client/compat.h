/*
 * compat.h - what the platform offers; the only place besides the backend
 * files where #if may test the OS.
 *
 * Linux and the BSDs have pipe2(), SOCK_NONBLOCK/SOCK_CLOEXEC, MSG_NOSIGNAL
 * and POSIX.1-2008's st_mtim; macOS spells the stat times st_mtimespec, has
 * no pipe2() or socket type flags, and asks for no SIGPIPE with SO_NOSIGPIPE.
 * `make check-macos` compiles and links the client for macOS (the BSDs are
 * not compiled for here).
 */
#ifndef NR_COMPAT_H
#define NR_COMPAT_H

#include <errno.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

/* The one switch for Linux-only code: the inotify backend. Elsewhere (or
 * built with -DNR_NO_INOTIFY) watch polls by default and warns why. */
#if defined(__linux__) && !defined(NR_NO_INOTIFY)
#define NR_HAVE_INOTIFY 1
#else
#define NR_HAVE_INOTIFY 0
#endif

/* struct stat's modification and change times, as struct timespec */
#if defined(__APPLE__)
#define NR_ST_MTIM(st) ((st)->st_mtimespec)
#define NR_ST_CTIM(st) ((st)->st_ctimespec)
#else
#define NR_ST_MTIM(st) ((st)->st_mtim)
#define NR_ST_CTIM(st) ((st)->st_ctim)
#endif

/* The send() flag that keeps a peer's close from raising SIGPIPE; macOS gets
 * SO_NOSIGPIPE from nr_socket_nonblock() instead. */
#if defined(MSG_NOSIGNAL) && !defined(__APPLE__)
#define NR_MSG_NOSIGNAL MSG_NOSIGNAL
#elif defined(SO_NOSIGPIPE)
#define NR_MSG_NOSIGNAL 0
#else
#error "need MSG_NOSIGNAL or SO_NOSIGPIPE to write to sockets without SIGPIPE"
#endif

/* O_NONBLOCK and FD_CLOEXEC on fd, for systems that cannot ask at creation. */
static inline int nr_fd_nonblock_cloexec(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) || fcntl(fd, F_SETFD, FD_CLOEXEC))
		return -1;
	return 0;
}

/* Close fd, keeping the errno of the failure that made us give it up. */
static inline int nr_close_failed(int fd)
{
	int saved = errno;

	close(fd);
	errno = saved;
	return -1;
}

/* A non-blocking, close-on-exec socket that never raises SIGPIPE (with
 * NR_MSG_NOSIGNAL on send); -1 and errno on failure. */
static inline int nr_socket_nonblock(int family, int type)
{
#if defined(SOCK_NONBLOCK) && defined(SOCK_CLOEXEC)
	int fd = socket(family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
#else
	int fd = socket(family, type, 0);

	if (fd >= 0 && nr_fd_nonblock_cloexec(fd))
		return nr_close_failed(fd);
#endif
#if defined(SO_NOSIGPIPE)
	int one = 1;

	if (fd >= 0 && setsockopt(fd, SOL_SOCKET, SO_NOSIGPIPE, &one, sizeof(one)))
		return nr_close_failed(fd);
#endif
	return fd;
}

/* A socket from accept(): non-blocking, close-on-exec, and (where send() has no
 * MSG_NOSIGNAL) no SIGPIPE when the peer is gone; -1 and errno on failure. */
static inline int nr_accepted_nonblock(int fd)
{
	if (nr_fd_nonblock_cloexec(fd))
		return -1;
#if defined(SO_NOSIGPIPE)
	int one = 1;

	if (setsockopt(fd, SOL_SOCKET, SO_NOSIGPIPE, &one, sizeof(one)))
		return -1;
#endif
	return 0;
}

/* pipe2(fd, O_NONBLOCK | O_CLOEXEC), or its two steps where there is no pipe2
 * (macOS; the client starts no thread that could fork in between). */
static inline int nr_pipe_nonblock(int fd[2])
{
#if defined(__APPLE__)
	if (pipe(fd))
		return -1;
	if (nr_fd_nonblock_cloexec(fd[0]) || nr_fd_nonblock_cloexec(fd[1])) {
		nr_close_failed(fd[1]);
		return nr_close_failed(fd[0]);
	}
	return 0;
#else
	return pipe2(fd, O_NONBLOCK | O_CLOEXEC);
#endif
}

#endif
