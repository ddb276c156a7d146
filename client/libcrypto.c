/*
 * libcrypto.c - OpenSSL's libcrypto, loaded the first time the client needs it.
 *
 * Linking libcrypto costs every start of the client ~3 ms (the dynamic loader
 * maps and relocates 4.7 MB before main(), measured with a cold CPU as an
 * editor's save hook meets it), most of a `netreload ping` to a server
 * without a secret, which never hashes anything. So on Linux the client does
 * not link it: these are the libcrypto functions the client and common/ call,
 * each loading the library (dlopen) on first use and calling the real one.
 * The library is the one the headers are from (libcrypto.so.3 for OpenSSL 3).
 * The macOS build links libcrypto as usual and leaves this file out.
 *
 * The executable exports none of these names (no -rdynamic, no -lcrypto), so
 * libcrypto's own calls between its functions never come back here. Only the
 * main thread calls them: the lookup thread (targets.c) only resolves names.
 */
#include <dlfcn.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/opensslv.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "report.h"

#if OPENSSL_VERSION_MAJOR >= 3
#define NR_LIBCRYPTO "libcrypto.so." OPENSSL_MSTR(OPENSSL_VERSION_MAJOR)
#define NR_LIBSSL_PKG "libssl" OPENSSL_MSTR(OPENSSL_VERSION_MAJOR)
#else
#define NR_LIBCRYPTO "libcrypto.so.1.1"
#define NR_LIBSSL_PKG "libssl1.1"
#endif

static void *lib;

/* The real function name: loads the library first; a client that cannot
 * load it cannot sign or hash, so it says why and stops. */
static void *real(const char *name)
{
	void *fn;

	if (!lib && !(lib = dlopen(NR_LIBCRYPTO, RTLD_NOW | RTLD_LOCAL))) {
		fprintf(stderr, "netreload: error: cannot load OpenSSL's %s (%s): install it "
				"(Debian: apt-get install %s)\n", NR_LIBCRYPTO, dlerror(), NR_LIBSSL_PKG);
		exit(NR_EXIT_USAGE);
	}
	if (!(fn = dlsym(lib, name))) {
		fprintf(stderr, "netreload: error: %s has no %s: the client was built against "
				"another OpenSSL (rebuild it: make)\n", NR_LIBCRYPTO, name);
		exit(NR_EXIT_USAGE);
	}
	return fn;
}

/* RET NAME(PARAMS) calling the real NAME with ARGS (POSIX lets dlsym()'s
 * pointer be converted to a function pointer). */
#define NR_FORWARD(ret, name, params, args)                  \
	ret name params                                      \
	{                                                    \
		static ret(*fn) params;                      \
		if (!fn)                                     \
			fn = (ret(*) params)real(#name);     \
		return fn args;                              \
	}
#define NR_FORWARD_VOID(name, params, args)                  \
	void name params                                     \
	{                                                    \
		static void(*fn) params;                     \
		if (!fn)                                     \
			fn = (void(*) params)real(#name);    \
		fn args;                                     \
	}

/* Clearing memory needs no library: before anything loaded it (an
 * unreadable secret file, say), glibc's explicit_bzero does the same. */
void OPENSSL_cleanse(void *ptr, size_t len)
{
	static void (*fn)(void *, size_t);

	if (!lib) {
		explicit_bzero(ptr, len);
		return;
	}
	if (!fn)
		fn = (void (*)(void *, size_t))real("OPENSSL_cleanse");
	fn(ptr, len);
}

NR_FORWARD(int, CRYPTO_memcmp, (const void *a, const void *b, size_t len), (a, b, len))
NR_FORWARD(const EVP_MD *, EVP_sha256, (void), ())
NR_FORWARD(unsigned char *, HMAC,
	   (const EVP_MD *md, const void *key, int key_len, const unsigned char *data,
	    size_t data_len, unsigned char *out, unsigned int *out_len),
	   (md, key, key_len, data, data_len, out, out_len))
NR_FORWARD(int, EVP_Digest,
	   (const void *data, size_t count, unsigned char *md, unsigned int *size,
	    const EVP_MD *type, ENGINE *impl),
	   (data, count, md, size, type, impl))
NR_FORWARD(EVP_MD_CTX *, EVP_MD_CTX_new, (void), ())
NR_FORWARD_VOID(EVP_MD_CTX_free, (EVP_MD_CTX *ctx), (ctx))
NR_FORWARD(int, EVP_DigestInit_ex, (EVP_MD_CTX *ctx, const EVP_MD *type, ENGINE *impl),
	   (ctx, type, impl))
NR_FORWARD(int, EVP_DigestUpdate, (EVP_MD_CTX *ctx, const void *d, size_t cnt), (ctx, d, cnt))
NR_FORWARD(int, EVP_DigestFinal_ex, (EVP_MD_CTX *ctx, unsigned char *md, unsigned int *s),
	   (ctx, md, s))
NR_FORWARD(int, EVP_EncodeBlock, (unsigned char *t, const unsigned char *f, int n), (t, f, n))
NR_FORWARD(int, EVP_DecodeBlock, (unsigned char *t, const unsigned char *f, int n), (t, f, n))
NR_FORWARD(unsigned char *, SHA1, (const unsigned char *d, size_t n, unsigned char *md), (d, n, md))
