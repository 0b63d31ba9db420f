// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
// The uprobe target of the tests: calls add(argv[1], argv[2]) and prints the sum.
#include <stdio.h>
#include <stdlib.h>

__attribute__((noinline)) int add(int a, int b)
{
	__asm__ volatile("" ::: "memory");
	return a + b;
}

int main(int argc, char **argv)
{
	if (argc < 3)
		return 2;
	printf("%d\n", add(atoi(argv[1]), atoi(argv[2])));
	return 0;
}
