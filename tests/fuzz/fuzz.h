/* Shared by the libFuzzer targets: quiet logs, and fuzz input as a file for the loaders
 * that read one (an in-memory file, so nothing lands on disk). */
#ifndef POOLER_FUZZ_H
#define POOLER_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "log.h"

enum log_level log_min_level = LOG_ERROR;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* data as /proc/self/fd/N in path; returns the fd to close afterwards, or -1. */
static inline int fuzz_file(const uint8_t *data, size_t size, char *path, size_t pathlen)
{
	int fd = memfd_create("fuzz", 0);
	if (fd < 0)
		abort();
	if (size > 0 && write(fd, data, size) != (ssize_t)size)
		abort();
	snprintf(path, pathlen, "/proc/self/fd/%d", fd);
	return fd;
}

/* NUL-terminated copy of data. */
static inline char *fuzz_text(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);
	if (s == NULL)
		abort();
	for (size_t i = 0; i < size; i++)
		s[i] = (char)data[i];
	s[size] = '\0';
	return s;
}

#endif
