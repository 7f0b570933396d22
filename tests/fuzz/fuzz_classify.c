/* Fuzz target: the SQL classifier. Besides not crashing, the verdict cache must never
 * make a statement look read-only when the parser alone says otherwise, and a shape
 * learned as a write stays one. */
#include <string.h>

#include "classify.h"
#include "fuzz.h"

static struct classifier *cached, *uncached;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const names[] = {"count", "now", "lower", "random", "nextval"};
	static const char *const vol[] = {"random", "nextval"};
	const char *sql = (const char *)data;

	if (cached == NULL) {
		/* a small cache, so the fuzzer also churns evictions */
		cached = classify_new(16);
		uncached = classify_new(0);
		static const char *const unlogged[] = {"u_log", "u_view"};
		struct classify_catalog cat = {names, 5, vol, 2, NULL, 0, unlogged, 2};
		classify_set_catalog(cached, &cat);
		classify_set_catalog(uncached, &cat);
	}
	char key[2048]; /* as the classifier's own key */
	(void)classify_normalize(sql, size, key, sizeof(key));

	struct verdict first = classify_sql(cached, sql, size);
	struct verdict again = classify_sql(cached, sql, size);
	struct verdict truth = classify_sql(uncached, sql, size);
	if ((first.read_only || again.read_only) && !truth.read_only)
		abort(); /* the cache turned a write into a read */
	if (first.hint != truth.hint || again.hint != truth.hint)
		abort();

	classify_learn_write(cached, sql, size);
	if (classify_normalize(sql, size, key, sizeof(key)) > 0 &&
	    classify_sql(cached, sql, size).read_only)
		abort(); /* learned as a write, still judged a read */
	return 0;
}
