/* Fuzz target: the ini parser and every key's value reader. A file either loads into a
 * config whose every derived figure can be computed and printed, or is refused with a
 * message that names the file. */
#include <string.h>

#include "config.h"
#include "fuzz.h"

static void ignore(const char *key, const char *value, const char *def, bool changeable,
                   void *arg)
{
	(void)key, (void)value, (void)def, (void)changeable, (void)arg;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char path[64], err[1024];
	int fd = fuzz_file(data, size, path, sizeof(path));
	struct config *cfg = config_load(path, err, sizeof(err));

	close(fd);
	if (cfg == NULL) {
		if (strstr(err, path) == NULL)
			abort(); /* an error that does not say which file */
		return 0;
	}
	FILE *null = fopen("/dev/null", "w");
	config_print(cfg, null);
	fclose(null);
	config_foreach(cfg, ignore, NULL);
	for (int d = 0; d < cfg->n_dbs; d++) {
		const struct db_conf *db = &cfg->dbs[d];
		if (config_find_db(cfg, db->name) == NULL)
			abort();
		for (int n = 0; n < db->n_nodes; n++) {
			char src[256];
			int size_for = config_pool_size(db, db->node_list[n], src, sizeof(src));
			if (size_for < 0)
				abort();
		}
	}
	config_free(cfg);
	return 0;
}
