/* Fuzz target: the first packet of a connection (after its length word), and the
 * startup `options` it may carry. */
#include <string.h>

#include "fuzz.h"
#include "params.h"
#include "proto.h"

static bool keep(void *arg, const char *name, const char *value)
{
	if (!proto_valid_param_name(name))
		abort(); /* names reach the callback only once checked */
	params_set(arg, name, value);
	return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct startup st;
	struct params wants;

	if (size > PROTO_MAX_STARTUP)
		return 0; /* the connection code refuses these before parsing */
	if (proto_parse_startup(data, size, &st) != STARTUP_V3)
		return 0;
	if (st.nparams < 0 || st.nparams > PROTO_MAX_PARAMS)
		abort();
	params_init(&wants);
	for (int i = 0; i < st.nparams; i++) {
		/* every pointer lies inside the packet, on a terminated string */
		const uint8_t *n = (const uint8_t *)st.names[i], *v = (const uint8_t *)st.values[i];
		if (n < data || v < data || v + strlen(st.values[i]) >= data + size)
			abort();
		(void)proto_valid_param_name(st.names[i]);
		if (strcmp(st.names[i], "options") == 0)
			(void)proto_parse_options(st.values[i], keep, &wants);
	}
	(void)proto_startup_get(&st, "user");
	(void)proto_startup_get(&st, "database");
	params_free(&wants);
	return 0;
}
