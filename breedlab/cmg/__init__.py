"""The Child Model Generator (Genesis V1, section VI): profile, initialise, distil, rehearse."""
