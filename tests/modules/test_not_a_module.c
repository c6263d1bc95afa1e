/*
 * test_not_a_module.c - a shared object without the impetus_module symbol
 */
__attribute__((visibility("default"))) int test_not_a_module_value(void);

int test_not_a_module_value(void)
{
	return 42;
}
