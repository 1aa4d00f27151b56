"""Nipype workflows of dcequant (participant and group levels) and their thin interfaces."""
