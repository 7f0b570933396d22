/* Fuzz target: the two access files. The first input byte splits the rest: the auth file
 * (PgBouncer's userlist format, with plain, md5 and SCRAM secrets) and the hba rules, which
 * are then matched against a few clients. */
#include <string.h>

#include "auth.h"
#include "fuzz.h"
#include "hba.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char path[64], err[1024];

	if (size < 1)
		return 0;
	size_t split = size > 1 ? data[0] % size : 0;
	const uint8_t *users = data + 1;
	size_t users_len = split > 0 ? split - 1 : 0;

	int fd = fuzz_file(users, users_len, path, sizeof(path));
	struct auth_file *af = auth_file_load(path, err, sizeof(err));
	close(fd);
	if (af != NULL) {
		for (int i = 0; i < af->n_users; i++)
			if (auth_file_find(af, af->users[i].name) == NULL)
				abort(); /* every loaded user can be found */
		auth_file_free(af);
	} else if (strstr(err, path) == NULL) {
		abort();
	}

	char *rules = fuzz_text(users + users_len, size - 1 - users_len);
	struct hba *h = hba_parse(rules, "fuzz.hba", err, sizeof(err));
	if (h != NULL) {
		static const char *const addrs[] = {"127.0.0.1", "10.1.2.3", "::1", "fe80::1",
		                                    "unix"};
		for (size_t i = 0; i < sizeof(addrs) / sizeof(addrs[0]); i++) {
			int line = 0;
			enum hba_method m =
			    hba_match(h, addrs[i], i % 2 == 0, "app", "alice", &line);
			if (hba_method_name(m) == NULL)
				abort();
		}
		hba_free(h);
	} else if (strstr(err, "fuzz.hba") == NULL) {
		abort();
	}
	free(rules);
	return 0;
}
