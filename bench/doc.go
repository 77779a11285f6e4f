// Package bench holds mailgate's benchmark harness and its comparisons with
// other parsers and proxies. It has its own go.mod so that the product never
// depends on the peers it is measured against.
package bench
