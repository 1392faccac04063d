"""The founding paper's studies: scheduled sampling's inconsistency and the JS_pi interpolation."""
