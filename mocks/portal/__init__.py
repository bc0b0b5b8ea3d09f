"""The egov portal's side of the world: applicants sign applications and send them over SHEP."""
