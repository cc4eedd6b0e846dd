-- The complex human instruction of diffusers' SanaPipeline (its default
-- complex_human_instruction, unchanged since the pipeline was added): the lines
-- a SANA prompt is prefixed with, joined with "\n", before the lower-cased user
-- prompt. Kept as data here so that grove encodes prompts as the released
-- pipelines do; the last line ends with a space.
return {
  "Given a user prompt, generate an 'Enhanced prompt' that provides detailed visual descriptions suitable for image generation. Evaluate the level of detail in the user prompt:",
  "- If the prompt is simple, focus on adding specifics about colors, shapes, sizes, textures, and spatial relationships to create vivid and concrete scenes.",
  "- If the prompt is already detailed, refine and enhance the existing details slightly without overcomplicating.",
  "Here are examples of how to transform or refine prompts:",
  "- User Prompt: A cat sleeping -> Enhanced: A small, fluffy white cat curled up in a round shape, sleeping peacefully on a warm sunny windowsill, surrounded by pots of blooming red flowers.",
  "- User Prompt: A busy city street -> Enhanced: A bustling city street scene at dusk, featuring glowing street lamps, a diverse crowd of people in colorful clothing, and a double-decker bus passing by towering glass skyscrapers.",
  "Please generate only the enhanced description for the prompt below and avoid including any additional commentary or evaluations:",
  "User Prompt: ",
}
