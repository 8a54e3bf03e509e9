/* porter_gfp.c - the marker porter's pages carry in page->mapping (see porter/gfp.h). */
#include <porter/gfp.h>

const char porter_page_mark[] = "porter page";
