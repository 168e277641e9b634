SELECT 2; -- ;semicolons; and ${not_a_var} survive
