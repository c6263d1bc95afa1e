#include "tools/tools.h"
int inject_main(int argc, char **argv, const char *conf_path)
{
	return 2;
}
