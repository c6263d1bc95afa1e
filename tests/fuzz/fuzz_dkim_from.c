/*
 * fuzz_dkim_from.c - the From: domain scanner of the opendkim module
 * (modules/opendkim/od_from.c, compiled in here: modules are not in
 * impetus_lib)
 *
 * Properties: never reads past the NUL; a domain found is 1..outlen-1
 * bytes of [a-z0-9._-], does not start or end with a dot; with a small
 * buffer it is found only if it fits, and then equals the one found with
 * a large buffer.
 */
#include "fuzz.h"

#include "../../modules/opendkim/od_from.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *v = malloc(size + 1);
	char big[256], small[6];

	if (v == NULL)
		return 0;
	memcpy(v, data, size);
	v[size] = '\0';
	bool ok = od_from_domain(v, big, sizeof(big));
	if (ok) {
		size_t n = strlen(big);

		MUST(n > 0 && n < sizeof(big));
		MUST(big[0] != '.' && big[n - 1] != '.');
		for (size_t i = 0; i < n; i++)
			MUST((big[i] >= 'a' && big[i] <= 'z') || (big[i] >= '0' && big[i] <= '9') ||
			     big[i] == '.' || big[i] == '-' || big[i] == '_');
	}
	if (od_from_domain(v, small, sizeof(small)))
		MUST(ok && strcmp(small, big) == 0);
	free(v);
	return 0;
}
