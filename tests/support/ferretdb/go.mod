module mysync/tests/support/ferretdb

go 1.26.8
